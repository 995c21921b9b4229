"""The installation config: model and loading, cross-key checks, rules, summary,
kernel parameters.
"""
