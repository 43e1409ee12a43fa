"""Structured output as clients ask for it, against a gateway in demo mode: the OpenAI SDK's
``beta.chat.completions.parse`` and LangChain's ``ChatOpenAI(...).with_structured_output`` (default
method), for ``auto`` and ``claude:default``. The demo answers like the real services: JSON that
validates against the requested schema."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tests.conftest import Gateway


class Address(BaseModel):
    city: str
    postcode: str | None


class Person(BaseModel):
    name: str
    age: int
    languages: list[str]
    address: Address


PROMPT = "Marie Curie was born in Warsaw and spoke Polish and French. Extract her as a person record."


@pytest.mark.parametrize("model", ["auto", "claude:default", "kimi-api:thinking"])
def test_sdk_parse_returns_the_pydantic_model(full_gateway: Gateway, model: str) -> None:
    completion = full_gateway.client().beta.chat.completions.parse(
        model=model, messages=[{"role": "user", "content": PROMPT}], response_format=Person)
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person) and isinstance(person.address, Address)
    assert person.name and person.languages


@pytest.mark.parametrize("model", ["auto", "claude:default"])
def test_langchain_with_structured_output(full_gateway: Gateway, model: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=model, base_url=full_gateway.base_url, api_key="test-key", max_retries=0)  # type: ignore[arg-type]
    person = llm.with_structured_output(Person).invoke(PROMPT)
    assert isinstance(person, Person) and person.address.city


@pytest.mark.parametrize("model", ["auto", "claude:default"])
def test_langchain_json_mode_and_function_calling(full_gateway: Gateway, model: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=model, base_url=full_gateway.base_url, api_key="test-key", max_retries=0)  # type: ignore[arg-type]
    called = llm.with_structured_output(Person, method="function_calling").invoke(PROMPT)
    assert isinstance(called, Person)
    as_json = llm.with_structured_output(method="json_mode").invoke(PROMPT + " Answer in JSON.")
    assert isinstance(as_json, dict)
