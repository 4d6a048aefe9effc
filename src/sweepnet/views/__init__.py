"""What a user looks at: charts, network pictures, the report, explore, animate.

Modules, lowest first; each imports only modules above it in this list:

    drawing   shared helpers: colours, inline data, facets, field names, rendering to files
    phase     phase diagrams and the difference of two (``sweepnet chart --compare``)
    curves    training curves
    minwidth  the smallest width that separates
    points    a dataset's points (``sweepnet datasets NAME``)
    betti     Betti numbers through the layers (after ``sweepnet topology``)
    network   one network's pictures (``sweepnet inspect``) and the decision-boundary grid
    charts    the charts' front door: ``from_results`` (``sweepnet chart``) and every builder
    explore   the report's linked view
    report    the report page (``sweepnet report``)
    animate   one network retrained, frame by frame (``sweepnet inspect --animate``)
"""
