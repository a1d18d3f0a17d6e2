"""Framework-neutral core of rosettazoo and one base module per framework."""
