"""The merchant context publishes no events yet; onboarding changes are read through its service."""
