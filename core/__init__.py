"""The floor every app stands on: domain errors, the API's error shape, database helpers,
throttling, parsers, logging, admin scoping, money and time. It imports no app of ours."""
