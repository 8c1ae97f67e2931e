"""SFT examples: the shipped rail-debugging set, feedback import, and prompt rendering."""
