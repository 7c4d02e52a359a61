"""The words of the data protocol, once: every reader, the pipeline, the evaluation protocol and
the command line take their choices from here (no imports, so the CLI's help stays instant)."""

DATASET_NAMES = ("DRIVE", "STARE", "CHASE_DB1")  # the keys of datasets.DATASETS
SPLITS = ("train", "test", "all")
LABEL_SETS = ("reference", "second")  # first observer (the paper's), second observer
FOV_SOURCES = ("official", "derived")  # the distribution's FOV masks, or thresholded images
ANCHORS = ("top_left", "center")  # where an image sits in its padded square (paper: top_left)
