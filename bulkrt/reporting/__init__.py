"""The campaign report: ledger records folded into a model, drawn as one self-contained page.

May import the foundation, the core and the ledger wing.
"""
