"""The schemes served without an external system or client library: ``mem://`` (an in-process
broker), ``file://`` (JSON lines), ``metronome`` (ticks) and ``custom://`` (a user's class).

Each module declares its scheme's ``ADAPTER``; :data:`adapters.registry.MODULES` names the module.
Nothing is imported here, so loading one of them loads no other.

Usage::

    from adapters.builtin.mem import mem_drain, mem_put

    mem_put("jobs", [{"n": 1}])     # what a mem://queue/jobs source reads next
"""
