"""The shape of pgqueue's imports: no cycle, and every module under an import-linter contract
(``lint-imports`` checks the contracts themselves; typing-only imports count in both)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp

_PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("pgqueue", exclude_type_checking_imports=False)


def test_no_pgqueue_module_imports_itself_back_through_another() -> None:
    graph = _graph()

    cycles = [
        [importer, *chain[1:]]
        for importer in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(importer))
        if (chain := graph.find_shortest_chain(importer=imported, imported=importer)) is not None
    ]

    assert cycles == []


def test_every_pgqueue_module_is_named_by_an_import_contract() -> None:
    contracts = tomllib.loads(_PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    named: set[str] = set()
    for contract in contracts["contracts"]:
        for layer in contract.get("layers", []):
            named.update(module.strip() for module in layer.split("|"))
        named.update(contract.get("source_modules", []))

    outside = [
        module
        for module in sorted(_graph().modules)
        if module != "pgqueue" and not any(module == n or module.startswith(f"{n}.") for n in named)
    ]

    assert outside == []
