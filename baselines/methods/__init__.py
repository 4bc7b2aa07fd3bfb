"""The ways of handling inadmissible actions, one small module each (see :mod:`baselines.method`).

Each module declares its algo's config (:class:`baselines.settings.PPOSettings` plus its own fields
and the backends that implement it) and its :class:`~baselines.method.Method`, named ``METHOD``;
:mod:`baselines.registry` lists them by algo name.
"""
