"""What runs used and cost: measured from the engines and the buckets, recorded in the store."""
