"""`make bench`: Conveyor against bare baselines on the same machine, in the same run."""
