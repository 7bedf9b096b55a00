"""Durable state of the service: SQLite (WAL) files under the data folder."""
