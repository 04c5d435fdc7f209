"""Tests of adapters/builtin/: mem://, file://, metronome and custom://."""
