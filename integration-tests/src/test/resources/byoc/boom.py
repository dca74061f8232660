print('starting')
raise ValueError('boom: the data has no rows')
