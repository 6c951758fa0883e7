"""Training: one short loop (:mod:`.loop`) that fires events (:mod:`.events`); everything else
listens. A strategy (:mod:`.strategies`) decides what a step trains (one network, fused
branches, bagging's weighted views, a snapshot/FGE trajectory); callbacks (:mod:`.callbacks`)
warm and cache the frozen stump, keep the weight average, schedule the learning rate, evaluate,
stop early, draw the progress bar, log, and keep a run folder (:mod:`.fit`) in step.

See ``docs/training.md`` for the events and how to write a callback or a strategy.
"""
