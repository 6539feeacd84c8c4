"""Finding the images a tool returns: every ImageArtifact, wherever it sits in the result."""

from __future__ import annotations

from typing import Annotated, Any

from PIL import Image as PILImage
from pydantic import BaseModel, Field

from lensforge.results import ImageArtifact, TextSpan, _may_hold_artifacts, iter_artifacts


def artifact(colour: int) -> ImageArtifact:
    return ImageArtifact.from_pil(PILImage.new("RGB", (4, 3), (colour, 0, 0)))


class Page(BaseModel):
    words: list[TextSpan]


class Panel(BaseModel):
    caption: str
    image: ImageArtifact | None = None
    children: list[Panel] = []


class Scores(BaseModel):
    values: list[Annotated[float, Field(ge=0)]]


class Loose(BaseModel):
    anything: dict[str, Any]


class Watched(Page):
    """A Page that counts how often its fields are read."""

    reads: int = 0

    def __getattribute__(self, name: str) -> Any:
        if name == "words":
            object.__setattr__(self, "reads", object.__getattribute__(self, "reads") + 1)
        return super().__getattribute__(name)


def test_artifacts_are_found_in_nested_models_lists_and_dicts() -> None:
    inner, outer, loose = artifact(1), artifact(2), artifact(3)
    tree = Panel(caption="a", image=outer, children=[Panel(caption="b", image=inner)])
    value = {"panels": [tree], "free": Loose(anything={"deep": [loose]})}
    assert [a.blob for a in iter_artifacts(value)] == [outer.blob, inner.blob, loose.blob]


def test_a_model_that_cannot_hold_an_artifact_is_not_walked() -> None:
    page = Watched(words=[TextSpan(text="x", confidence=0.5)] * 3)
    assert list(iter_artifacts(page)) == []
    assert page.reads == 0
    assert list(iter_artifacts({"page": page, "image": artifact(4)})) != []


def test_field_constraints_do_not_make_a_model_look_like_it_holds_artifacts() -> None:
    assert _may_hold_artifacts(Scores) is False
    assert _may_hold_artifacts(Panel) is True
