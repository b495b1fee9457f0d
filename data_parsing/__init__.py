"""Ingestion: stream line parser (pure), Kafka consumer loop, batch aggregation and writer."""
