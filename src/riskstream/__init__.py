"""riskstream: customer credit-risk monitoring on Kafka with Faust."""

__version__ = "0.1.0"
