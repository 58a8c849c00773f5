"""REST (JSON) binding of the Customer Billing service."""
