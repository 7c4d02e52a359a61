"""Experiments made of many training runs: declared as data, resumed across machines, bundled.

* :mod:`.campaign`: the long runs (the paper-scale DRIVE and STARE runs, the ablations) as
  data in ``configs/campaigns.json``; ``saunetv2 campaign status | run | pack | ship``;
* :mod:`.compare`: the sibling designs trained and scored under one budget (notebook 7);
* :mod:`.claims`: intervals over seeds and test images, paired differences, verdicts;
* :mod:`.ablation`: the paper's ablation rows (Tables 3, 4 and SA-UNet's Table 1A row) from
  the ``ablation`` campaign's seeds, with intervals, paired tests and verdicts;
* :mod:`.ship`: a finished run evaluated under every protocol and installed with its card.
"""
