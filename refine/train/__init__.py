"""Training of the learned networks (flight mode: procedural flights with exact ground truth).

    config   -- TrainConfig and its parts (data, losses, optimiser, unroll)
    data     -- the flight cache: procedural flights rendered on the training device
    unroll   -- one sample = the real generator loop unrolled over a clip; losses per step
    trainer  -- the loop: data-parallel under torchrun, exact resumption, curves and sample grids
"""
