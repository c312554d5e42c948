print('hello from api')
