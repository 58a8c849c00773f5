"""SOAP 1.1 binding of the Customer Billing service."""
