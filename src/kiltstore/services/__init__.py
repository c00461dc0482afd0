"""The kilt store's services, one module each (see :data:`kiltstore.services.base.SERVICES`)."""
