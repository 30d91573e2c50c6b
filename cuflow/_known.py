"""The one ``deserialize`` the built-in families share (losses, metrics, optimizers, learning-rate schedules).

Each family's ``serialize`` writes ``{"class_name": ..., "config": ...}``; its ``deserialize`` looks the class name up
among the family's classes plus the caller's ``custom_objects`` and rebuilds it with ``from_config``. A leaf module
(NumPy-free, importing nothing of cuflow), so every family can use it without an import cycle.
"""


def deserialize_known(config, known, what, plural, fold_case=False):
    """The object ``config`` describes, built by ``known[class_name].from_config(config["config"])``.

    Args:
        config: ``{"class_name": ..., "config": {...}}`` (a missing ``config`` means ``{}``).
        known: ``{class name: class}``, the family's classes and the caller's custom objects.
        what, plural: the family's name in the error message (``"optimizer"``, ``"optimizers"``).
        fold_case: match class names case-insensitively (``known``'s keys must then be lower case).

    Raises:
        ValueError: the class name is not in ``known``; the message lists the known ones.
    """
    name = config.get("class_name")
    key = str(name).lower() if fold_case else name
    if key not in known:
        raise ValueError(f"Unknown {what} {name!r}; known {plural}: {', '.join(sorted(known))}")
    return known[key].from_config(config.get("config") or {})
