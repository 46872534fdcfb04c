"""The domain the API, the nightly batch, ``reproduce`` and the command line share: a household
bundle and its checks, the one model loader, scoring with exact explanations, the advice beside the
scores (lists, eligibility, warm list) and the household file. Nothing here knows about HTTP."""
