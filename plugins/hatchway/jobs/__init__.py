"""The job-run lifecycle: intake, buckets, launch, status, cleanup."""
