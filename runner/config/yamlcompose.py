"""YAML events to nodes, bounded as GitLab bounds parsed YAML, without recursion.

PyYAML's composers (its Python one and libyaml's in `_yaml`) recurse once per nesting level and
build the whole document before anything can be measured: 1,000 nested brackets end in a
RecursionError, and a 2 MB file of one-letter items takes seconds and hundreds of megabytes
before it could be refused. This composer reads the parser's events with an explicit stack and
keeps GitLab's DeepSize account while it goes:

- every node adds its Ruby size (rubysize.py) when it is complete; an alias adds the whole size
  of the node it names, each time, because psych's object is walked again wherever it is used.
  An alias bomb of a few hundred bytes is refused after a few hundred events, before any value
  is built (the node graph itself stays as small as the text: an alias is the same node);
- nesting counts every open mapping and list, and an alias adds the height of what it names;
- an alias to a node that is still open makes psych build a structure that contains itself,
  which GitLab's DeepSize follows until it is too deep: it is refused the same way.

Over either limit, composing stops with `TooBig`, carrying the position where it was crossed.
Anchors may be redefined later in a file, as libyaml (and so psych) allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from yaml.composer import ComposerError
from yaml.error import Mark
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.config.rubysize import array_size, hash_size

PLAIN_TAG = "pyci:plain"  # tag given to unquoted scalars; psych decides their type from the text
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"


class EventSource(Protocol):
    """What PyYAML's parsers (the Python one and libyaml's CParser) offer."""

    def get_event(self) -> Event: ...

    def peek_event(self) -> Event: ...

    def dispose(self) -> None: ...


class TooBig(Exception):
    """The document passes GitLab's size or depth limit; `why` says which, `mark` where."""

    def __init__(self, why: str, mark: Mark | None):
        super().__init__(why)
        self.why = why
        self.mark = mark


@dataclass
class _Open:
    """A mapping or list being composed."""

    node: SequenceNode | MappingNode
    size_before: int  # the document's size when it opened
    anchored: bool  # it has an `&anchor`: an alias may use it again
    height: int = 1  # 1 + the height of its highest child so far
    key: Node | None = None  # a mapping's key waiting for its value
    pairs: list[tuple[Node, Node]] = field(default_factory=list)


@dataclass(frozen=True)
class _Measured:
    size: int
    height: int


def compose_documents(
    source: EventSource,
    scalar_size: Callable[[ScalarNode], int],
    *,
    max_size: int,
    max_depth: int,
) -> list[Node]:
    """Every document's root node; raises TooBig, or PyYAML's errors for bad YAML."""
    composer = _Composer(source, scalar_size, max_size, max_depth)
    return composer.documents()


class _Composer:
    def __init__(
        self,
        source: EventSource,
        scalar_size: Callable[[ScalarNode], int],
        max_size: int,
        max_depth: int,
    ):
        self.source = source
        self.scalar_size = scalar_size
        self.max_size = max_size
        self.max_depth = max_depth
        self.size = 0  # the whole file's: GitLab measures the document it loads
        self.measured: dict[int, _Measured] = {}  # anchored nodes once complete, by id()

    def documents(self) -> list[Node]:
        source = self.source
        _expect(source.get_event(), StreamStartEvent)
        nodes = []
        while not isinstance(source.peek_event(), StreamEndEvent):
            _expect(source.get_event(), DocumentStartEvent)
            nodes.append(self._document())
            _expect(source.get_event(), DocumentEndEvent)
        source.get_event()
        return nodes

    def _document(self) -> Node:
        anchors: dict[str, Node] = {}
        stack: list[_Open] = []
        get_event = self.source.get_event
        while True:
            event = get_event()
            kind = type(event)
            if kind is ScalarEvent:
                tag = event.tag
                if tag is None or tag == "!":
                    tag = PLAIN_TAG if event.implicit[0] else _STR_TAG
                node: Node = ScalarNode(
                    tag, event.value, event.start_mark, event.end_mark, style=event.style
                )
                size = self.scalar_size(node)
                if event.anchor is not None:
                    self._remember(anchors, event.anchor, node, _Measured(size, 0))
                self._grow(size, 0, stack, event.start_mark)
                height = 0
            elif kind is AliasEvent:
                node, height = self._alias(anchors, event, stack)
            elif kind is SequenceStartEvent or kind is MappingStartEvent:
                self._open(anchors, event, stack)
                continue
            elif kind is SequenceEndEvent or kind is MappingEndEvent:
                node, height = self._close(anchors, event, stack)
            else:
                raise ComposerError(None, None, f"unexpected {kind.__name__}", event.start_mark)
            if not stack:
                return node
            _attach(stack[-1], node, height)

    def _remember(
        self, anchors: dict[str, Node], anchor: str, node: Node, measured: _Measured | None
    ) -> None:
        anchors[anchor] = node  # a later `&name` replaces an earlier one, as in libyaml
        if measured is not None:
            self.measured[id(node)] = measured

    def _alias(
        self, anchors: dict[str, Node], event: AliasEvent, stack: list[_Open]
    ) -> tuple[Node, int]:
        node = anchors.get(event.anchor)
        if node is None:
            raise ComposerError(
                None, None, f"found undefined alias {event.anchor!r}", event.start_mark
            )
        measured = self.measured.get(id(node))
        if measured is None:  # still open: the alias is inside what it names
            raise TooBig(
                f"an alias refers to the node that contains it, *{event.anchor}",
                event.start_mark,
            )
        self._grow(measured.size, measured.height, stack, event.start_mark)
        return node, measured.height

    def _open(self, anchors: dict[str, Node], event: Any, stack: list[_Open]) -> None:
        tag = event.tag
        if isinstance(event, SequenceStartEvent):
            node: Any = SequenceNode(
                _SEQ_TAG if tag in (None, "!") else tag,
                [],
                event.start_mark,
                None,
                flow_style=event.flow_style,
            )
        else:
            node = MappingNode(
                _MAP_TAG if tag in (None, "!") else tag,
                [],
                event.start_mark,
                None,
                flow_style=event.flow_style,
            )
        if event.anchor is not None:
            self._remember(anchors, event.anchor, node, None)  # measured when it closes
        stack.append(_Open(node, self.size, anchored=event.anchor is not None))
        if len(stack) > self.max_depth:
            raise TooBig(f"nested more than {self.max_depth} levels deep", event.start_mark)

    def _close(
        self, anchors: dict[str, Node], event: Event, stack: list[_Open]
    ) -> tuple[Node, int]:
        done = stack.pop()
        node = done.node
        node.end_mark = event.end_mark
        if isinstance(node, MappingNode):
            node.value = done.pairs
            own = hash_size(len(done.pairs))
        else:
            own = array_size(len(node.value))
        self._grow(own, 0, stack, node.start_mark)
        if done.anchored:  # only an anchored node can be met again, through an alias
            self.measured[id(node)] = _Measured(self.size - done.size_before, done.height)
        return node, done.height

    def _grow(self, size: int, height: int, stack: list[_Open], mark: Mark) -> None:
        self.size += size
        if self.size > self.max_size:
            raise TooBig(
                f"more than {self.max_size:,} bytes once parsed, aliases counted each time", mark
            )
        if height and len(stack) + height > self.max_depth:
            raise TooBig(f"nested more than {self.max_depth} levels deep", mark)


def _attach(parent: _Open, node: Node, height: int) -> None:
    parent.height = max(parent.height, height + 1)
    if isinstance(parent.node, SequenceNode):
        parent.node.value.append(node)
    elif parent.key is None:
        parent.key = node
    else:
        parent.pairs.append((parent.key, node))
        parent.key = None


def _expect(event: Event, kind: type) -> None:
    if not isinstance(event, kind):
        raise ComposerError(
            None, None, f"expected {kind.__name__}, found {type(event).__name__}", event.start_mark
        )
