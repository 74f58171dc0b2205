"""Nested tasks: tasks that submit tasks and wait for them."""

import oxray


@oxray.remote
def leaf(i):
    return i


@oxray.remote
def fan_out(i):
    return sum(oxray.get([leaf.remote(i * 10 + j) for j in range(10)]))


def test_nested_submit_and_get(cluster):
    assert oxray.get(fan_out.remote(1)) == sum(range(10, 20))


def test_fan_out_does_not_deadlock_on_two_cpus(cluster):
    # 100 tasks each blocked on 10 more: only possible because a blocked
    # worker lends its CPU back.
    results = oxray.get([fan_out.remote(i) for i in range(100)], timeout=240)
    assert results == [sum(range(i * 10, i * 10 + 10)) for i in range(100)]


def test_deep_recursion(cluster):
    @oxray.remote
    def depth(n):
        if n == 0:
            return 0
        return 1 + oxray.get(depth.remote(n - 1))

    assert oxray.get(depth.remote(6), timeout=120) == 6


def test_nested_put_owned_by_worker(cluster):
    @oxray.remote
    def make():
        r = oxray.put("from worker")
        return [r]

    @oxray.remote
    def read(refs):
        return oxray.get(refs[0])

    inner = oxray.get(make.remote())
    assert oxray.get(read.remote(inner)) == "from worker"
