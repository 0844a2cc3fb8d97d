"""Event data: schemas, readers and writers, kinematics and built-in samples."""
