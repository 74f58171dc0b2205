"""Checks Ray makes when a task or actor is declared or submitted: wrong
arguments, unusable functions and options fail in the caller, at once."""

import numpy as np
import pytest

import oxray
from oxray.actor import ActorClassInheritanceException


@pytest.mark.parametrize("args, kwargs, message", [
    ((), {"c": 1}, "missing a required argument: 'a'"),
    ((1, 2, 3), {"c": 1}, "too many positional arguments"),
    ((1,), {"c": 1, "d": 4}, "unexpected keyword argument 'd'"),
    ((1,), {}, "missing a required argument: 'c'"),
])
def test_arguments_the_signature_rejects_raise_type_error(cluster, args, kwargs, message):
    @oxray.remote
    def f(a, b=1, *, c):
        return a

    with pytest.raises(TypeError, match=message):
        f.remote(*args, **kwargs)
    assert oxray.get(f.remote(1, c=2)) == 1


def test_varargs_and_kwargs_accept_anything(cluster):
    @oxray.remote
    def anything(*args, **kwargs):
        return len(args), sorted(kwargs)

    assert oxray.get(anything.remote(1, 2, x=3)) == (2, ["x"])


def test_actor_constructor_and_method_arguments_are_checked(cluster):
    @oxray.remote
    class A:
        def __init__(self, x):
            self.x = x

        def add(self, y, *rest):
            return self.x + y + sum(rest)

        @staticmethod
        def static(z):
            return z

        @classmethod
        def klass(cls, w):
            return w

    with pytest.raises(TypeError, match="missing a required argument: 'x'"):
        A.remote()
    a = A.remote(1)
    with pytest.raises(TypeError, match="missing a required argument: 'y'"):
        a.add.remote()
    assert oxray.get(a.add.remote(1, 2, 3)) == 7
    assert oxray.get(a.static.remote(5)) == 5
    assert oxray.get(a.klass.remote(6)) == 6
    with pytest.raises(TypeError):
        a.static.remote(5, 6)
    # The handle checks calls in other processes too.

    @oxray.remote
    def call_wrongly(handle):
        try:
            handle.add.remote()
        except TypeError as e:
            return str(e)

    assert "missing a required argument" in oxray.get(call_wrongly.remote(a))


def test_empty_parentheses_and_async_functions_are_refused():
    with pytest.raises(TypeError, match="no arguments and no parentheses"):
        oxray.remote()(lambda: 1)
    with pytest.raises(ValueError, match="'async def' should not be used for remote tasks"):
        @oxray.remote
        async def g():
            return 1


def test_get_if_exists_needs_a_name(cluster):
    @oxray.remote
    class A:
        pass

    with pytest.raises(ValueError, match="name must be specified to use `get_if_exists`"):
        A.options(get_if_exists=True).remote()


def test_inheriting_from_an_actor_class_is_refused():
    @oxray.remote
    class Base:
        pass

    with pytest.raises(ActorClassInheritanceException, match="Inheriting from actor classes is not"):
        class Derived(Base):
            pass
    assert issubclass(ActorClassInheritanceException, TypeError)


def test_a_function_too_large_to_ship_is_refused(cluster):
    big = np.ones(15_000_000)  # 120 MB captured by the closure

    @oxray.remote
    def heavy():
        return big.sum()

    with pytest.raises(ValueError, match="too large .*FUNCTION_SIZE_ERROR_THRESHOLD"):
        heavy.remote()
