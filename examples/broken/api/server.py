"""broken api: exits at once, as a service whose configuration is wrong would: a CrashLoopBackOff."""

import sys

print("api: DATABASE_URL is not set, giving up", file=sys.stderr)
sys.exit(1)
