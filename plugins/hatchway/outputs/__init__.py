"""What a finished workflow run leaves behind: its outputs, harvested as a STAC catalog
into the calling workspace (:mod:`hatchway.outputs.stac`)."""
