"""Code only the supervisor process runs (SPEC §4-§5, §7-§8).

``supervisor.py`` is the process and the command line; what it stands on lives here:

* :mod:`.config` — the supervisor's TOML config;
* :mod:`.placement` — which worker runs which DAG;
* :mod:`.workers` — the worker processes: starting them, their control channel, noticing
  the dead and the hung, restarting them within the budget;
* :mod:`.counters` — counters carried across a worker's death (monotonic metrics);
* :mod:`.ha` and :mod:`.leadership` — high availability: the ZooKeeper election and the
  workers' lease, and what leading or standing by means for the workers and the API;
* :mod:`.check` and :mod:`.replay` — the ``dagserver check`` and ``dagserver replay`` commands.

Nothing in ``actors/``, ``adapters/`` or ``graphs/`` imports from here.
"""
