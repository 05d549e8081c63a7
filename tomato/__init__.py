"""Tomato Pay: an aggregated payment gateway (one signed merchant API over Alipay, WeChat Pay and bank channels)."""

__version__ = "0.1.0"
