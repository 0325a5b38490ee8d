"""The commands, one module per group. Each module's ``add`` registers its parsers; each command parses its
flags and calls one library function, importing its stage lazily so that ``consume`` never loads torch."""

from perfwatch.app.commands import broker, consume, model, produce, subscribe, tools

# Listed explicitly, in the order of `perfwatch --help`.
GROUPS = (broker, model, consume, produce, subscribe, tools)
