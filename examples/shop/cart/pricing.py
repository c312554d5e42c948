"""Cart pricing: the sum of price x quantity, in cents."""


def total_cents(lines: list[tuple[int, int]]) -> int:
    return sum(price * quantity for price, quantity in lines)
