print('hello from web')
