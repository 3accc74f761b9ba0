"""NIfTI cohorts to sharded TFRecords (``o2l build-records``)."""
