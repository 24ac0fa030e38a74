"""The pure core of segmenter: windows, metrics, rules, classification. No I/O, no clock."""
