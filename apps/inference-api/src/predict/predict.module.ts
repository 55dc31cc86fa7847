import { Module } from '@nestjs/common';
import { OpenAIModule } from '../openai/openai.module.js';
import { PredictRoutes } from './predict.routes.js';
import { PredictService } from './predict.service.js';

/** GET /predict?input_text= (a hot route, see HotRoutes). */
@Module({ imports: [OpenAIModule], providers: [PredictService, PredictRoutes] })
export class PredictModule {}
