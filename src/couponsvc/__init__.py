"""couponsvc: the coupon operations of the Microsoft Advertising Customer Billing API v13, self-hosted."""

__version__ = "0.1.0"
