"""Mail: building coupon messages from templates, and the transports that deliver them."""
