"""The command line: argument parsing and printing, one module per group of commands.

May import everything; decides nothing itself.
"""
