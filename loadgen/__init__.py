"""Load generation, the load-distribution verdict, resource sampling and the self-healing
drill for selfheal-lb. Usable on its own: `python -m loadgen --help`."""
