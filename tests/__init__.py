"""dagserver's tests: a package per part of the code (actors, graphs, adapters, supervisor, web); helpers in support."""
