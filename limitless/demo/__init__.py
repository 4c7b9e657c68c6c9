"""The demo: a throwaway repository and plan, and the simulated agent that works in it.

May import: errors.
"""
