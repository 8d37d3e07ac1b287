"""stockpipe: US stock market data from Finnhub through Kafka into a lake and a warehouse."""

__version__ = "0.1.0"
