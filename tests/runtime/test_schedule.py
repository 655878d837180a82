from aime.runtime.schedule import updates_due


def test_updates_due_carries_fractional_credit():
    credit, total = 0.0, 0
    for _ in range(10):
        n, credit = updates_due(credit, env_steps=3, train_ratio=8, batch_size=4, seq_len=8)  # 0.75 per call
        total += n
    assert total == 7 and abs(credit - 0.5) < 1e-9
