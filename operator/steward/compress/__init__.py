"""The compression runner: make cheaper variants of a model, measure each on the target
hardware, and choose the one to promote by a gate. torch is imported only by the modules that
need it (the `compress` extra); the gate and the report are plain Python."""
