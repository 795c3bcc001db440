"""The JSON bodies the sync routes take from operators, checked by pydantic.

Every field is bounded (lengths as in the tables) and unknown fields are refused, so a
typo in an automation script is a 422 naming the field rather than an option ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class MarkSpec(BaseModel):
    model_config = {"extra": "forbid"}
    kind: str = Field(min_length=1, max_length=32)
    id: str = Field(min_length=1, max_length=512)
    to: str = Field(min_length=1, max_length=1024)


class MarkBody(BaseModel):
    model_config = {"extra": "forbid"}
    mark: MarkSpec


class RegistrationSpec(BaseModel):
    model_config = {"extra": "forbid"}
    source: str = Field(min_length=1, max_length=64)


class RegistrationBody(BaseModel):
    model_config = {"extra": "forbid"}
    registration: RegistrationSpec


class RequestSpec(BaseModel):
    model_config = {"extra": "forbid"}
    kind: str = Field(default="image", min_length=1, max_length=32)
    id: str = Field(min_length=1, max_length=512)
    source: str | None = Field(default=None, max_length=64)


class RequestBody(BaseModel):
    model_config = {"extra": "forbid"}
    request: RequestSpec


class ResolveSpec(BaseModel):
    model_config = {"extra": "forbid"}
    source: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1, max_length=32)
    id: str = Field(min_length=1, max_length=512)
    # adopt: the row held here becomes the source's (its version replaces it);
    # dismiss: keep the row held here and forget the clash;
    # neither: the local row was deleted or renamed, ask the source for its version again.
    adopt: bool = False
    dismiss: bool = False


class ResolveBody(BaseModel):
    model_config = {"extra": "forbid"}
    resolve: ResolveSpec
