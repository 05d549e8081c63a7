"""The authenticator enrolment QR: an `otpauth://` URI (RFC 6238 key URI format) drawn as inline SVG."""

from __future__ import annotations

import pyotp
from markupsafe import Markup

from tomato.gateway.cashier.render import qr_svg

ISSUER = "Tomato Pay"


def otpauth_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def svg(uri: str) -> Markup:
    """Safe to mark: the SVG is drawn by the qrcode library, the URI only in its modules' geometry."""
    return Markup(qr_svg(uri))
