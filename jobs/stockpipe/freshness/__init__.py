"""The fresh intraday path: lake-object notifications, the warehouse writer lock, gold freshness state."""
