"""`movierec architecture`: ARCHITECTURE.md, drawn from the code's own imports.

The layers are the import-linter contracts in `.importlinter` (kept by tests/test_architecture.py); the
modules of each layer, the arrows between the packages and every import along the two data paths come
from the import graph (grimp, installed with the dev extras), so the document cannot drift from the code:
a data-path step whose import is gone stops the command, and tests/test_architecture.py compares the
committed ARCHITECTURE.md with what this prints (`movierec architecture > ARCHITECTURE.md` updates it).
"""

from __future__ import annotations

import argparse
import configparser
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = REPO / ".importlinter"


@dataclass(frozen=True)
class Step:
    """One arrow of a data path: `source` hands over to `target`, by an import unless `channel` names another way."""

    source: str
    target: str
    what: str
    channel: str = ""


EVENT_TO_ROW = (
    Step("simulator.engine", "simulator.events", "a simulated session formats watch, rating, recommendation lines"),
    Step("simulator.engine", "simulator.sinks", "and hands them to the sink (`--output kafka`)"),
    Step("simulator.sinks", "data_parsing.producer", "which sends them with StreamProducer"),
    Step("data_parsing.producer", "data_parsing.consumer", "to the topic the parser consumes", "Kafka topic movielog"),
    Step("data_parsing.consumer", "data_parsing.batch", "IngestLoop collects a batch of messages"),
    Step("data_parsing.batch", "data_parsing.parser", "parses each line"),
    Step("data_parsing.batch", "db_utils.rows", "and merges repeated events into rows by the merge rule"),
    Step("data_parsing.consumer", "data_parsing.writer", "writes the batch in one transaction, then commits offsets"),
    Step("data_parsing.writer", "db_utils.queries", "COPY + upserts (watches, ratings, recommendations, dead letters)"),
    Step("db_utils.queries", "db_utils.rows", "whose ON CONFLICT clauses the same merge rule declares"),
    Step("db_utils.queries", "db_utils.models", "into the tables of the models"),
)

REQUEST_TO_ANSWER = (
    Step("simulator.recommend_client", "load_balancer.router.app", "a user asks for recommendations",
         "HTTP GET /recommend/user"),
    Step("load_balancer.router.app", "load_balancer.router.routing", "the router picks the user's sticky arm"),
    Step("load_balancer.router.app", "load_balancer.router.backends", "and forwards the request"),
    Step("load_balancer.router.backends", "inference.app", "to main or nightly", "HTTP GET /recommend/user"),
    Step("inference.app", "inference.service", "the service validates the id and answers"),
    Step("inference.service", "inference.history", "reads the user's history (circuit breaker)"),
    Step("inference.history", "db_utils.queries", "in one query"),
    Step("inference.service", "vectordb_scripts.table", "with the neighbour table loaded once per worker"),
    Step("inference.service", "inference.recommender", "the recommender builds the profile"),
    Step("inference.recommender", "inference.ranking", "and the strategy ranks the candidates"),
)


def read_contracts(path: Path = CONTRACTS) -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(path)
    return config


def layers_of(config: configparser.ConfigParser, contract: str) -> list[list[str]]:
    """The layers of a `layers` contract, top first, each as its modules (split on `|` or `:`)."""
    lines = config[f"importlinter:contract:{contract}"]["layers"].strip().splitlines()
    return [[name.strip() for name in line.replace("|", ":").split(":")] for line in lines]


def root_packages(config: configparser.ConfigParser) -> list[str]:
    return [name for name in config["importlinter"]["root_packages"].split() if name != "tests"]


def build_graph(roots: Sequence[str]) -> Any:
    try:
        import grimp
    except ImportError as exc:  # a dev dependency (import-linter brings it)
        raise SystemExit("movierec architecture needs grimp: pip install -e '.[dev]'") from exc
    return grimp.build_graph(*roots, include_external_packages=False, cache_dir=None)


def units(config: configparser.ConfigParser) -> list[tuple[str, list[str]]]:
    """(label, units) of each layer, top first; a package with its own layers contract shows those as units."""
    inner: dict[str, list[str]] = {}
    for section in config.sections():
        name = section.removeprefix("importlinter:contract:")
        if name != section and name != "layers" and config[section]["type"] == "layers":
            layers = layers_of(config, name)
            inner[layers[0][0].rsplit(".", 1)[0]] = [unit for layer in layers for unit in layer]
    labelled = []
    for layer in layers_of(config, "layers"):
        parents = {element.rsplit(".", 1)[0] for element in layer if "." in element}
        label = f"{parents.pop()} (top)" if len(layer) > 1 and len(parents) == 1 else " | ".join(layer)
        labelled.append((label, [unit for element in layer for unit in inner.get(element, [element])]))
    return labelled


def unit_of(module: str, all_units: Iterable[str]) -> str | None:
    matches = [u for u in all_units if module == u or module.startswith(u + ".")]
    return max(matches, key=len) if matches else None


def node(unit: str) -> str:
    return unit.replace(".", "_")


def layer_section(graph: Any, layered: list[tuple[str, list[str]]]) -> list[str]:
    all_units = [u for _, layer in layered for u in layer]
    out = ["## Layers", "", "Top first. A module may import its own layer's package and the layers below it, never one",
           "above (`.importlinter`, checked by `lint-imports` in tests/test_architecture.py).", ""]
    for number, (label, layer) in enumerate(layered, start=1):
        out.append(f"{number}. **{label}**")
        for unit in layer:
            names = ", ".join(sorted(m[len(unit) + 1:] for m in graph.find_children(unit) if m not in all_units))
            out.append(f"   - `{unit}`" + (f": {names}" if names else ""))
    out += ["", "Arrows are imports between the packages (`movierec.cli` starts each command's module by name,",
            "which the graph does not see).", "", "```mermaid", "flowchart TD"]
    for number, (label, layer) in enumerate(layered, start=1):
        out.append(f'  subgraph L{number}["{label}"]')
        out += [f'    {node(unit)}["{unit}"]' for unit in layer]
        out.append("  end")
    edges = set()
    for module in graph.modules:
        source = unit_of(module, all_units)
        for imported in graph.find_modules_directly_imported_by(module):
            target = unit_of(imported, all_units)
            if source and target and source != target:
                edges.add((source, target))
    out += [f"  {node(a)} --> {node(b)}" for a, b in sorted(edges)]
    return [*out, "```", ""]


def path_section(graph: Any, title: str, steps: Sequence[Step]) -> list[str]:
    for step in steps:
        for module in (step.source, step.target):
            if module not in graph.modules:
                raise SystemExit(f"movierec architecture: {title}: no module {module}; update movierec/architecture.py")
        if not step.channel and not graph.direct_import_exists(importer=step.source, imported=step.target):
            raise SystemExit(f"movierec architecture: {title}: {step.source} no longer imports {step.target}")
    out = [f"## {title}", "", "```mermaid", "flowchart LR"]
    out += [f"  {node(s.source)}[{s.source}] -->|{s.channel or 'imports'}| {node(s.target)}[{s.target}]"
            for s in steps]
    out += ["```", ""]
    out += [f"- `{s.source}` -> `{s.target}`" + (f" ({s.channel})" if s.channel else "") + f": {s.what}"
            for s in steps]
    return [*out, ""]


def render(config_path: Path = CONTRACTS) -> str:
    config = read_contracts(config_path)
    graph = build_graph(root_packages(config))
    out = ["# Architecture", "",
           "Generated by `movierec architecture` from the code's imports and `.importlinter`; do not edit by hand",
           "(tests/test_architecture.py fails when this file and the code disagree).", ""]
    out += layer_section(graph, units(config))
    out += path_section(graph, "Event -> row", EVENT_TO_ROW)
    out += path_section(graph, "Request -> answer", REQUEST_TO_ANSWER)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    """`movierec architecture [--output PATH]` (argv[0] is the command name)."""
    parser = argparse.ArgumentParser(prog="movierec architecture", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="write here instead of printing (e.g. ARCHITECTURE.md)")
    args = parser.parse_args(argv[1:])
    text = render()
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0
