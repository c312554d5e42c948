"""Build-time check of the cart's pricing (deliberate CPU work: about 2 s of one core)."""

import hashlib

from pricing import total_cents

assert total_cents([(250, 2), (99, 1)]) == 599
# Stand-in for a real test suite's seconds: sign a batch of sample carts.
for n in range(160):
    hashlib.pbkdf2_hmac("sha256", f"cart-{n}".encode(), b"shop-cart", 25_000)
print("cart: self-test passed")
