"""Container builds on Seqera Wave: the cache of built images and the ensure of a build."""
